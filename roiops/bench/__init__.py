"""`python -m roiops bench` (command.py): every benchmark case of cases.py, roiops against
torchvision on the same inputs, interleaved in one process; the ratio table on stdout and in
OUT/report.md, the raw numbers in OUT/results.json, the chart in OUT/speedup.png. Needs
torchvision, and matplotlib for the chart (the bench extra).

"GB/s" is the compulsory traffic of a case (cases.py) over roiops' time: how close roiops comes to
the memory system's limit. Ratios, not times, are the result: both sides share the machine's noise.
"""
