"""Part segmentation of point clouds: ShapeNetPart or generated part-labelled shapes."""
