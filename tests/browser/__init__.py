"""Tests that drive a real JupyterLab server in headless Chromium (marker ``browser``)."""
