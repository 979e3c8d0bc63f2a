"""Tests of the exec and port-forward streaming protocols."""
