"""Offline builder of a tiny random Florence-2, saved like a Hugging Face repo for the real exporter.

Same token layout as the released tokenizer: <s> <pad> </s> <unk> first (ids 0-3), BPE pieces, then
the <loc_0>..<loc_999> coordinate tokens and Florence's markup tokens, and <image> last (the
placeholder the transformers processor repeats 577 times). The image side stays 768, so the vision
graph, the 577 image features and the preprocessing are exactly those of the real models.
"""

from __future__ import annotations

import json
from pathlib import Path

from tiny import CORPUS, build_tokenizer

SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
MARKUP = ["<od>", "</od>", "<ocr>", "</ocr>", "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>",
          "<poly>", "</poly>", "<sep>"]
OCR_PATTERN = r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"
IMAGE_SIDE = 768
IMAGE_TOKENS = 577  # (768 / 32)^2 spatial features + 1 pooled one
# The released generation_config.json: beam search 3 and no repeated 3-grams; tests ask for greedy.
GENERATION = {"bos_token_id": 0, "decoder_start_token_id": 2, "eos_token_id": 2, "pad_token_id": 1,
              "forced_bos_token_id": 0, "forced_eos_token_id": 2, "no_repeat_ngram_size": 3, "num_beams": 3,
              "early_stopping": True}


def build_tiny_florence(out_dir: Path, seed: int = 0) -> Path:
    """A tiny random Florence-2 (4-stage DaViT of width 8-64, 2+2 BART layers of width 32) with its
    tokenizer, image processor and processor configs, in the layout of florence-community/Florence-2-*."""
    import torch
    from transformers import (
        AutoTokenizer,
        BartConfig,
        CLIPImageProcessorPil,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        GenerationConfig,
    )
    from transformers.models.florence2.configuration_florence2 import Florence2VisionConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir, SPECIAL, corpus=CORPUS + "\n".join(
        ["What does the image describe?", "Describe in detail what is shown in the image.",
         "Describe with a paragraph what is shown in the image.", "What is the text in the image, with regions?"]))
    tokenizer.add_tokens([f"<loc_{i}>" for i in range(1000)] + MARKUP)
    tokenizer.add_special_tokens(["<image>"])
    tokenizer.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BartTokenizer", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "unk_token": "<unk>", "sep_token": "</s>", "cls_token": "<s>", "mask_token": "<unk>",
        "extra_special_tokens": {"image_token": "<image>"}}), encoding="utf-8")
    hf_tokenizer = AutoTokenizer.from_pretrained(out_dir)

    vision = Florence2VisionConfig(depths=[1, 1, 1, 1], embed_dim=[8, 16, 32, 64], num_heads=[1, 2, 2, 4],
                                   num_groups=[1, 2, 2, 4], projection_dim=32, drop_path_rate=0.0)
    text = BartConfig(vocab_size=tokenizer.get_vocab_size(), d_model=32, encoder_layers=2, decoder_layers=2,
                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                      decoder_ffn_dim=64, max_position_embeddings=1024, bos_token_id=0, pad_token_id=1,
                      eos_token_id=2, decoder_start_token_id=2, dropout=0.0, attention_dropout=0.0,
                      activation_dropout=0.0)
    config = Florence2Config(vision_config=vision, text_config=text, image_token_id=hf_tokenizer.image_token_id)
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    with torch.no_grad():  # random init is tiny; larger weights make logits decisive, so greedy ties vanish
        for name, parameter in model.named_parameters():
            if parameter.dim() > 1 and "language_model" in name:
                parameter.normal_(0.0, 0.2)
    model.generation_config = GenerationConfig(**GENERATION)
    model.save_pretrained(out_dir)

    images = CLIPImageProcessorPil(size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}, do_center_crop=False,
                                   image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], resample=3,
                                   image_seq_length=IMAGE_TOKENS)
    processor = Florence2Processor(image_processor=images, tokenizer=hf_tokenizer,
                                   post_processor_config={"ocr": {"PATTERN": OCR_PATTERN, "AREA_THRESHOLD": 0.0},
                                                          "pure_text": {}})
    processor.save_pretrained(out_dir)
    return out_dir
