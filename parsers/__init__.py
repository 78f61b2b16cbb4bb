"""Readers that turn engine logs, launch commands and configs into rankmap facts."""
