"""Statistics: pyhf workspaces, CLs limits, kappa_lambda constraints."""
