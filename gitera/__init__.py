"""gitera: a git-native experiment tracker whose discipline is enforced by code."""

from __future__ import annotations

__version__ = "0.1.0"
