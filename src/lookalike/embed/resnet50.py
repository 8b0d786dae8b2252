"""`resnet50`: torchvision's ImageNet ResNet50, global-average-pooled (2048-d), as the seeds did.

Weights: https://download.pytorch.org/models/resnet50-11ad3fa6.pth (98 MB), torchvision's
`ResNet50_Weights.IMAGENET1K_V2` (80.9% top-1 against V1's 76.1%). Its evaluation transform:
resize 232, centre crop 224, ImageNet normalisation.
"""

from __future__ import annotations

from .torchvision_base import TorchvisionEmbedder, torchvision_source

RESNET50_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"


class ResNet50(TorchvisionEmbedder):
    name = "resnet50"
    version = "1"
    dim = 2048
    source = torchvision_source("resnet50", RESNET50_URL)
    resize = 232

    def build(self, models):
        return models.resnet50(weights=None)

    def features(self, model, x):
        for layer in (model.conv1, model.bn1, model.relu, model.maxpool):
            x = layer(x)
        for block in (model.layer1, model.layer2, model.layer3, model.layer4):
            x = block(x)
        return model.avgpool(x).flatten(1)  # everything but the final fc
