"""The edge: everything that touches the host goes through here."""
