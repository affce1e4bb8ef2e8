"""objbench: compare objmount with s3fs-fuse, rclone mount and a raw S3 client."""
