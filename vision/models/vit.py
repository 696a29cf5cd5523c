"""ViT-S/16 (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; the "S" size of Touvron
et al., DeiT, ICML 2021): 12 layers, 6 heads, hidden size 384, MLP 1536, patch 16, trained from
scratch. Built from a ``transformers.ViTConfig`` (imported only when a ViT is asked for).

``image_size`` is the input resolution (CIFAR images are resized on the device to it; 224 gives
the 14x14 patch grid of ViT-S/16); ``width`` is the hidden size, ``depth`` the number of layers.
"""

from __future__ import annotations

from torch import Tensor, nn


class ViTClassifier(nn.Module):
    """``ViTForImageClassification`` returning the logits tensor, like the other models here."""

    def __init__(
        self,
        num_classes: int,
        width: int = 384,
        depth: int = 12,
        heads: int = 6,
        patch_size: int = 16,
        image_size: int = 224,
    ):
        super().__init__()
        from transformers import ViTConfig, ViTForImageClassification

        if width % heads:
            raise ValueError(f"ViT hidden size (--width {width}) must be divisible by --vit_heads ({heads})")
        if image_size % patch_size:
            raise ValueError(f"--image_size ({image_size}) must be divisible by --patch_size ({patch_size})")
        config = ViTConfig(
            hidden_size=width,
            num_hidden_layers=depth,
            num_attention_heads=heads,
            intermediate_size=4 * width,
            image_size=image_size,
            patch_size=patch_size,
            num_labels=num_classes,
        )
        self.vit = ViTForImageClassification(config)

    def forward(self, x: Tensor) -> Tensor:
        return self.vit(pixel_values=x).logits


def vit_s16(
    num_classes: int, width: int = 384, depth: int = 12, heads: int = 6, patch_size: int = 16, image_size: int = 224
) -> ViTClassifier:
    return ViTClassifier(num_classes, width, depth, heads, patch_size, image_size)
