"""The package version (floor module: the serving data a checkpoint carries records it)."""

VERSION = "0.2.0"
