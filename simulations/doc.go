// Package simulations runs the real coordinator and node code in one
// process over a simulated network (see simulations/vnet for the libp2p
// links, simulations/memnet for membership) and measures how a package
// spreads: per scenario (a YAML file, see Scenario) and per strategy
// (mesh, relay, direct), the completion time of every node, the lower
// bound T* of DESIGN.md, the WAN bytes per site and the coordinator's
// egress.
//
// Time is real (Run, relaymesh sim run), or virtual with Options.Bubble:
// each strategy's fleet then runs in a testing/synctest bubble
// (TestVirtualSim, make vsim), and times are simulated seconds that CPU
// does not consume.
//
// To keep two cores from being the bottleneck a scenario's
// scale divides every rate and every size (package, fragment) by the same
// factor: each transfer then takes as long as it would unscaled, so the
// times reported are directly the unscaled times, while the process moves
// scale times fewer bytes. Ratios of payload (WAN bytes ÷ package size) do
// not change either; control traffic is not scaled, so it weighs scale
// times more in them.
package simulations
