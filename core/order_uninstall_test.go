package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// uninstall is a deploy order's alone, and an order without it encodes as
// it did before the field existed.
func TestOrderUninstall(t *testing.T) {
	t.Parallel()
	d := deployOrder()
	d.Uninstall = true
	if err := d.Validate(); err != nil {
		t.Errorf("deploy order with uninstall: %v", err)
	}
	for name, o := range map[string]*Order{"cancel": cancelOrder(), "scan": scanOrder()} {
		o.Uninstall = true
		if err := o.Validate(); !errors.Is(err, ErrBadOrder) {
			t.Errorf("%s order with uninstall: %v, want ErrBadOrder", name, err)
		}
	}
	b, err := json.Marshal(deployOrder())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("uninstall")) {
		t.Errorf("an order without uninstall encodes it: %s", b)
	}
}
