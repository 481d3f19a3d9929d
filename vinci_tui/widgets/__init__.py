"""The workbench's panes, one module each, plus the modal screens they open."""
