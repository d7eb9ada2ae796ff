#!/usr/bin/python3
"""pydicom side of the DICOM codec benchmark: one process, files on stdin, MODE header|full, REPEAT runs.
Prints the median seconds of the timed loops (interpreter start-up and imports are not timed)."""
import statistics
import sys
import time
import warnings

warnings.simplefilter("ignore")
import pydicom  # noqa: E402

mode, repeat = sys.argv[1], int(sys.argv[2])
files = [line.strip() for line in sys.stdin if line.strip()]
times = []
for _ in range(repeat + 1):  # the first loop warms up
    start = time.perf_counter()
    for path in files:
        if mode == "header":
            pydicom.dcmread(path, stop_before_pixels=True)
        else:
            ds = pydicom.dcmread(path)
            ds.pixel_array  # noqa: B018 - decode
    times.append(time.perf_counter() - start)
print(statistics.median(times[1:]))
