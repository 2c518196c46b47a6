from setuptools import find_packages, setup

# torchreid 0.2.5 on PyPI declares no dependencies of its own; "import torchreid"
# needs scipy, tensorboard, opencv, gdown, Pillow, matplotlib-free utils, so they
# are declared here. torch and torchvision are pinned as a pair that installs
# together from PyPI (PyPI's torchvision does not import with a CPU-only torch).
#
# Bounds where the plugin calls private helpers (tests/test_dependencies.py lists them
# and fails naming any that is missing): torch
# (DistributedDataParallel._set_params_and_buffers_to_ignore_for_model) and torchreid
# (Engine._evaluate, Dataset._transform_image, its registries) are pinned above; timm
# (VisionTransformer._pos_embed, PatchEmbed._init_img_size, Scheduler._get_lr) and
# open_clip (VisionTransformer._embeds, ._pool) stop before the next minor release.
# Lower bounds, checked 2026-12 by installing candidate wheels with pip (--no-deps
# --target) in front of the environment and running the model/optimizer/LSMRL tests:
# - timm 1.0.12: first release whose "radam"/"rmsprop" build torch's RAdam/RMSprop
#   (foreach=True); 1.0.11 and earlier build timm's own, which refuse foreach
#   (tests/test_fast_path.py); _init_img_size first appears in 1.0.8. 1.0.12 and 1.0.31
#   pass the tests.
# - open_clip 2.32: VisionTransformer._embeds/_pool first appear there (absent from the
#   2.31 wheel); 2.32.0 and 3.3.0 pass the LSMRL tests.
# - huggingface_hub 0.20: has get_session, get_paths_info, try_to_load_from_cache and
#   hf_hub_download as models/hub.py and download.py call them (read in its wheel).
INSTALL_REQUIRES = [
    'torch>=2.14,<2.15',
    'torchvision>=0.29,<0.30',
    'torchreid==0.2.5',
    'timm>=1.0.12,<1.1',
    'open_clip_torch>=2.32,<3.4',
    'huggingface_hub>=0.20',
    'yacs>=0.1.8',
    'PyYAML',
    'gdown',
    'tabulate',
    'tqdm',
    'numpy',
    'scipy',
    'Pillow',
    'tensorboard',
    'opencv-python-headless',
    'safetensors',
    # scripts/visualize.py: figures (matplotlib) and t-SNE (scikit-learn's TSNE, max_iter)
    'matplotlib',
    'scikit-learn>=1.5',
]

# scripts/export_onnx.py: torch's exporter (dynamo) needs onnxscript; the check runs onnxruntime
# the documentation site (mkdocs.yml): `mkdocs build --strict`, also run by tests/test_docs.py
DOCS_REQUIRES = ['mkdocs>=1.6,<2', 'mkdocstrings[python]>=0.26']

ONNX_REQUIRES = ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.2']

# scripts/search.py --search faiss (vireid_plugin/inference/index.py): a flat faiss index for
# large galleries; the exact search needs nothing. Bound: the version installed and tested
# here (2026-12, faiss-cpu 1.15.1), not checked below it.
FAISS_REQUIRES = ['faiss-cpu>=1.15']

setup(
    name='vireid_plugin',
    version='0.1.0',
    description='Visible-infrared person re-identification (SYSU-MM01, RegDB, HITSZ-VCM, LLCM, '
                'BUPTCampus; MIP, LSMRL) as a torchreid plugin',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['vireid_plugin', 'vireid_plugin.*']),
    # open_clip model configs of the package's own CLIP sizes (LSMRL-tiny.json)
    package_data={'vireid_plugin.models.lsmrl': ['*.json']},
    python_requires='>=3.10',
    install_requires=INSTALL_REQUIRES,
    # the test extra is what .ci/run installs: pytest, ruff (its lint step), the ONNX check, faiss
    extras_require={'onnx': ONNX_REQUIRES, 'docs': DOCS_REQUIRES, 'faiss': FAISS_REQUIRES,
                    'test': ['pytest>=7', 'ruff>=0.6,<1'] + ONNX_REQUIRES + DOCS_REQUIRES
                    + FAISS_REQUIRES},
)
