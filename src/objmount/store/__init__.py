"""Object stores behind one protocol: S3 (botocore + obstore) and in-memory."""

from objmount.store.base import Account, ListResult, ObjectInfo, ObjectStore

__all__ = ["Account", "ListResult", "ObjectInfo", "ObjectStore"]
