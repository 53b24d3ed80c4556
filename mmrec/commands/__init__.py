"""CLI commands, one module each; mmrec.cli assembles them. Each calls one library function."""
