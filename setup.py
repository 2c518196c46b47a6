from setuptools import find_packages, setup

# torchreid 0.2.5 on PyPI declares no dependencies of its own; "import torchreid"
# needs scipy, tensorboard, opencv, gdown, Pillow, matplotlib-free utils, so they
# are declared here. torch and torchvision are pinned as a pair that installs
# together from PyPI (PyPI's torchvision does not import with a CPU-only torch).
INSTALL_REQUIRES = [
    'torch>=2.14,<2.15',
    'torchvision>=0.29,<0.30',
    'torchreid==0.2.5',
    'timm>=1.0.15',
    'open_clip_torch>=2.24',
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
ONNX_REQUIRES = ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.2']

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
    # the test extra is what .ci/run installs: pytest, ruff (its lint step) and the ONNX check
    extras_require={'onnx': ONNX_REQUIRES,
                    'test': ['pytest>=7', 'ruff>=0.6,<1'] + ONNX_REQUIRES},
)
