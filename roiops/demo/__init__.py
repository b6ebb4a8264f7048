"""`python -m roiops demo`: train a small Mask R-CNN on synthetic shapes (on the CPU by default, in
one process or several), evaluate it with COCO's metrics and draw its detections.

    command.py   the command: train, evaluate, draw, save the model and some images
    shapes.py    the seeded dataset (squares, circles, triangles with boxes and masks)
    distributed.py  one process, or several (--nproc N, or torchrun) training data-parallel
    model.py     roiops' Mask R-CNN around a small backbone (roiops.models.assemble)
    train.py     AdamW with warm-up and cosine decay, a progress bar
    evaluate.py  COCO box / mask AP with pycocotools
    draw.py      detections.png
"""
