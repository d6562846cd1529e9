package simulations

import "errors"

var (
	// ErrBadScenario is returned for a scenario file with an invalid
	// field; the message names the field.
	ErrBadScenario = errors.New("simulations: bad scenario")
	// ErrSetup is returned when the simulated fleet could not be built.
	ErrSetup = errors.New("simulations: setup")
	// ErrTimeout is returned when sites did not converge in time.
	ErrTimeout = errors.New("simulations: timeout")
)
