"""Model families own their config section; builders take the section's defaults."""
import pytest
import torch

from vireid_plugin.config import ConfigError, get_default_config, load_config, model_kwargs
from vireid_plugin.config.sections import register_config_section
from vireid_plugin.models import build_model, register_model
from vireid_plugin.registry import CONFIG_SECTIONS, MODELS


@pytest.fixture
def toy_family():
    """A throw-away family registered for one test, removed afterwards."""
    register_config_section('toyfam', {'width': 3, 'tag': 'a', 'sizes': [1, 2]},
                            doc='toy models', choices={'tag': ('a', 'b')})
    seen = {}

    @register_model('toyfam_small', config_section='toyfam')
    def toyfam_small(num_classes, pretrained=True, num_cameras=0, img_size=None,
                     pretrained_path='', **options):
        seen.update(options, num_cameras=num_cameras, img_size=img_size)
        return torch.nn.Linear(options['width'], num_classes)

    yield seen
    del CONFIG_SECTIONS._table['toyfam']
    del MODELS._table['toyfam_small']


def test_builder_gets_section_defaults_and_overrides(toy_family):
    model = build_model('toyfam_small', 5, num_cameras=2, pretrained=False)
    assert model.in_features == 3 and model.out_features == 5
    assert toy_family == {'width': 3, 'tag': 'a', 'sizes': [1, 2], 'num_cameras': 2,
                          'img_size': None}
    assert build_model('toyfam_small', 5, width=7).in_features == 7
    # torchreid's own call shape: (num_classes=, loss=, pretrained=, use_gpu=)
    assert MODELS.get('toyfam_small')(num_classes=4, loss='softmax', pretrained=False,
                                      use_gpu=False).out_features == 4


def test_unknown_builder_option_lists_the_section_keys(toy_family):
    with pytest.raises(TypeError, match=r"widht.*sizes, tag, width"):
        build_model('toyfam_small', 5, widht=7)


def test_section_in_config_and_kwargs_from_config(toy_family):
    cfg = load_config('', ['model.name', 'toyfam_small', 'toyfam.width', '9'])
    assert cfg.toyfam.width == 9 and list(cfg.toyfam.sizes) == [1, 2]
    kw = model_kwargs(cfg, num_cameras=6)
    assert kw['width'] == 9 and kw['num_cameras'] == 6 and kw['img_size'] == (256, 128)
    assert build_model(cfg.model.name, 3, **kw).in_features == 9


def test_key_of_another_family_is_a_config_error(toy_family):
    # vit_base_reid reads the 'vit' section: a toyfam key would be silently ignored
    with pytest.raises(ConfigError, match=r"'toyfam.width' is set, but model 'vit_base_reid' "
                                          r"does not read the 'toyfam' section"):
        load_config('', ['toyfam.width', '9'])
    with pytest.raises(ConfigError, match=r"'vit.stride_size' is set, but model 'toyfam_small'"):
        load_config('', ['model.name', 'toyfam_small', 'vit.stride_size', '12'])
    # setting a key to its default value is harmless
    load_config('', ['toyfam.width', '3'])


def test_section_choices_are_checked(toy_family):
    with pytest.raises(ConfigError, match=r"'toyfam.tag' must be one of \('a', 'b'\)"):
        load_config('', ['model.name', 'toyfam_small', 'toyfam.tag', 'c'])
    with pytest.raises(ConfigError, match=r"'vit.test_feature' must be one of"):
        load_config('', ['vit.test_feature', 'after'])


@pytest.mark.parametrize('key,value,expect', [
    ('model.name', 'vit_bse_reid', "unknown model 'vit_bse_reid' (did you mean vit_base_reid"),
    ('train.optim', 'adamww', "unknown optimizer 'adamww' (did you mean adamw"),
    ('train.lr_scheduler', 'warmup_cosin', "unknown LR scheduler 'warmup_cosin' (did you mean "
                                           "warmup_cosine"),
    ('loss.terms', '[id, tripplet]', "unknown loss term 'tripplet' (did you mean triplet"),
])
def test_unknown_names_are_one_line_errors_with_close_matches(key, value, expect):
    with pytest.raises(ConfigError) as err:
        load_config('', [key, value] + (['loss.weights', '[1.0, 1.0]'] if key == 'loss.terms'
                                          else []))
    msg = str(err.value)
    assert key in msg and expect in msg and '\n' not in msg


def test_reserved_section_names_are_refused():
    with pytest.raises(ValueError, match='torchreid'):
        register_config_section('train', {'x': 1})


def test_loss_terms_declare_their_sections():
    cfg = get_default_config()
    # torchreid's names for the id/triplet options, declared by the terms themselves
    assert cfg.loss.softmax.label_smooth is True and cfg.loss.softmax.epsilon == 0.1
    assert cfg.loss.triplet.margin == 0.3 and cfg.loss.triplet.soft_margin is False
