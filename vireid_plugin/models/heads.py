"""BNNeck head shared by every plugin model; it also produces the named outputs.

In train mode a dict with 'features' (pre-BN, for the triplet loss), 'bn_features'
and 'logits' (what the plugin's engine reads; ``contract.py`` turns it into torchreid's
form for torchreid's engines); in eval mode one (B, D) tensor, the BN feature by
default or the pre-BN one.
"""
import torch.nn as nn

TEST_FEATURES = ('bn', 'pre_bn')


class BNNeck(nn.Module):
    """BatchNorm1d bottleneck + bias-free linear classifier (BoT / TransReID).

    The BN bias is frozen at zero so the BN feature stays centred on the
    origin, which keeps the cross-entropy (on the BN feature) and the triplet
    loss (on the pre-BN feature) from pulling the embedding against each other.
    """

    def __init__(self, in_dim, num_classes, test_feature='bn'):
        super().__init__()
        if num_classes < 1:
            raise ValueError('num_classes must be >= 1, got {}'.format(num_classes))
        if test_feature not in TEST_FEATURES:
            raise ValueError('test_feature must be one of {}, got {!r}'.format(
                TEST_FEATURES, test_feature))
        self.test_feature = test_feature
        self.bn = nn.BatchNorm1d(in_dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(in_dim, num_classes, bias=False)
        # BoT's weights_init_kaiming / weights_init_classifier.
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat):
        if not self.training and self.test_feature == 'pre_bn':
            return feat
        bn_feat = self.bn(feat)
        if not self.training:
            return bn_feat
        return {'features': feat, 'bn_features': bn_feat,
                'logits': self.classifier(bn_feat)}
