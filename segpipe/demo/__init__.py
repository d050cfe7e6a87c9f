"""Deterministic demo project: street scenes, vendor exports, planted defects, ground truth, and the
demo's own pipeline.yaml and taxonomy.yaml (DEMO_CONFIG)."""

from segpipe.demo.landing import DEMO_CONFIG, DemoSummary, generate_demo

__all__ = ["DEMO_CONFIG", "DemoSummary", "generate_demo"]
