"""The one shared library of Tuoguan's services."""
