package coordinator

import "fmt"

// Node names are unique: orders and `nodes show` target nodes by name, and
// a name is what the node asserts (its hostname or `node enroll --name`),
// so a second node must not take over a name in use. The peer ID stays
// the identity; a node re-enrolling or syncing under its own name is not a
// conflict. The empty name (a node that sent none) is never compared.

// nameTakenLocked returns an error when name is used by a node other than
// id. Callers hold c.st.mu. It scans the nodes: names are checked only at
// enrollment and when a node's name changes, not on every heartbeat.
func (c *Coordinator) nameTakenLocked(name, id string) error {
	if name == "" {
		return nil
	}
	for oid, o := range c.st.nodes {
		if oid != id && o.Name == name {
			return fmt.Errorf("%w: node name %q is already used by node %s (site %s): node names are unique; enroll this node under another name (node enroll --name NAME)",
				ErrConflict, name, oid, o.Site)
		}
	}
	return nil
}
