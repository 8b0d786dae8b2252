"""`vgg16-fc2` and `vgg16-maxpool`: torchvision's ImageNet VGG16, the seed systems' descriptors.

- `vgg16-fc2` (4096-d): the second fully connected layer after its ReLU, Keras' "fc2" output.
- `vgg16-maxpool` (512-d): the last convolutional block's maps (after pool5) max-pooled over
  space, Keras' `VGG16(include_top=False, pooling="max")`; 8x smaller vectors.

Weights: https://download.pytorch.org/models/vgg16-397923af.pth (528 MB), torchvision's
`VGG16_Weights.IMAGENET1K_V1`; resize 256, centre crop 224, ImageNet normalisation.
"""

from __future__ import annotations

from .torchvision_base import TorchvisionEmbedder, torchvision_source

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


class VGG16Fc2(TorchvisionEmbedder):
    name = "vgg16-fc2"
    version = "1"
    dim = 4096
    source = torchvision_source("vgg16", VGG16_URL)

    def build(self, models):
        return models.vgg16(weights=None)

    def features(self, model, x):
        x = model.avgpool(model.features(x)).flatten(1)
        # classifier = fc1, ReLU, Dropout, fc2, ReLU, Dropout, fc3: stop after fc2's ReLU
        return model.classifier[:5](x)


class VGG16MaxPool(VGG16Fc2):
    name = "vgg16-maxpool"
    version = "1"
    dim = 512

    def features(self, model, x):
        return model.features(x).amax(dim=(2, 3))
