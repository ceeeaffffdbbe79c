"""Point-cloud classification: meshes -> surface samples -> FPS clouds -> {pointnet, dgcnn, voxnet}
-> OA / mAcc / SO(3) robustness."""
