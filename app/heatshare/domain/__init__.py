"""Pure logic: units, readings, heat and money accounting. No Qt, no I/O, no clock reads."""
