"""The engine shared by every frontend: FUSE-shaped operations with plain results."""
