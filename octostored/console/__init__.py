"""Console logs: the stdout and stderr of training commands, kept beside their runs."""
