"""The ops' Python API, one module per op family; the package root re-exports it
(roiops.__all__)."""
