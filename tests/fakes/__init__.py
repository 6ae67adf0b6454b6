"""Fakes at the seams: each replays what the real thing said."""
