"""Evaluation protocols (LFW 10-fold verification, calibration on labelled folders), metrics and plots."""
