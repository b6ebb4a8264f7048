"""Deploying a detector: `python -m roiops export` turns a checkpoint into files that run without
the model's Python code, `python -m roiops predict` runs any of them over images.

    model_files.py  the formats (an ExportedProgram .pt2, an AOTInductor package .aoti.pt2, ONNX
                    .onnx), the facts each file carries about its model (ModelInfo), and opening
                    any of them -- or a checkpoint -- as one callable
    export.py       checkpoint -> StaticMaskRCNN -> the formats asked for, each verified
    predict.py      images -> letterboxed batches -> COCO results, pictures

A deployed model is roiops.models.StaticMaskRCNN: a batch of images of one fixed size in, padded
detections out. Images of another size are letterboxed to it (scaled to fit, padded with the mean
colour, which the model's normalisation turns to zero, as torchvision pads its batches), and the
detections mapped back; examples/cpp does the same in C++.
"""
