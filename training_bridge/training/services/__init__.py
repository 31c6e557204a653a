"""Writes of training runs, one module per purpose: `training` (start, cancel, sweep),
`launchers` (execute a run on a worker), `launcher_definitions`, `recovery`."""
