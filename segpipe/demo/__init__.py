"""Deterministic demo landing zone: street scenes, vendor exports, planted defects, ground truth."""

from segpipe.demo.landing import DemoSummary, generate_demo

__all__ = ["DemoSummary", "generate_demo"]
