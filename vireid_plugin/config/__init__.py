"""Configuration: torchreid-compatible yacs defaults plus the plugin's sections."""
from .defaults import get_default_config
from .loading import ConfigError, check_config, load_config, merge_file, merge_opts
from .kwargs import (dataset_options, engine_kwargs, engine_run_kwargs, imagedata_kwargs,
                     loss_kwargs, model_kwargs, optimizer_kwargs, schedule_settings,
                     scheduler_kwargs, videodata_kwargs)
from .sections import register_config_section
