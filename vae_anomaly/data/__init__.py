"""Data ingestion: readers, validation, preprocessing and fingerprints."""

from .dataset import Dataset, check_labels, load_dataset
from .fingerprint import fingerprint
from .images import ImageSet, read_idx, read_image_folder, read_npz, to_nchw, write_idx
from .tabular import iter_table, read_table, table_files
from .transform import ImageScaler, TabularTransformer, transformer_from_dict

__all__ = [
    "Dataset", "ImageScaler", "ImageSet", "TabularTransformer", "check_labels", "fingerprint", "iter_table",
    "load_dataset", "read_idx", "read_image_folder", "read_npz", "read_table", "table_files", "to_nchw",
    "transformer_from_dict", "write_idx",
]
