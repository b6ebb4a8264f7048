"""Deploying a detector: `python -m roiops export` turns a checkpoint into files that run without
the model's Python code, `python -m roiops predict` runs any of them over images.

    formats.py      the formats, one record each (an ExportedProgram .pt2, an AOTInductor package
                    .aoti.pt2, ONNX .onnx, OpenVINO's IR .xml): writing, recognising and opening
                    them -- or a checkpoint -- as one callable
    model_files.py  the facts each file carries about its model (ModelInfo), an opened file
    images.py       image files read as a viewer shows them, and letterboxed to the model's size
    export.py       checkpoint -> StaticMaskRCNN -> the formats asked for, in the dtype asked for
                    (float32, bfloat16, int8), each verified against the float32 model
    predict.py      images -> letterboxed batches -> COCO results, pictures; in one process or
                    several (roiops/_processes.py), decoding and writing beside the model
    parts.py        what a predict run has done, batch by batch: resuming, and the final merge

A deployed model is roiops.models.StaticMaskRCNN: a batch of images of one fixed size in, padded
detections out. Images of another size are letterboxed to it (scaled to fit, padded with the mean
colour, which the model's normalisation turns to zero, as torchvision pads its batches), and the
detections mapped back; examples/cpp does the same in C++.
"""
