"""Pure domain code: no I/O, no settings, no clock. Everything here takes `now` as an argument."""
