from __future__ import annotations

from pathlib import Path

import pytest

from streamhive.config import Config, ConfigError, load_config, parse_listen, reference_markdown

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.rtmp.listen == ":1935" and config.http.listen == ":8080"
    assert config.rtsp.listen == ":8554" and config.webrtc.listen == ":8189" and config.srt.listen == ":8890"
    assert parse_listen(config.rtmp.listen) == ("0.0.0.0", 1935)
    assert parse_listen("[::1]:80") == ("::1", 80)


def test_unknown_key_names_key_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rtmp:\n  listen: ':1935'\n  chunksize: 4096\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:3: rtmp.chunksize: unknown key" in str(err.value)


def test_bad_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("http:\n  listen: 'nope'\npaths:\n  live/a:\n    reader_max_lag: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert ":2: http.listen" in text and ":5: paths.live/a.reader_max_lag" in text
    path.write_text("paths:\n  '~[':\n    takeover: true\n")
    with pytest.raises(ConfigError, match="regular expression"):
        load_config(path)


def test_path_settings_exact_then_regex_then_defaults() -> None:
    config = load_config(
        None,
        "path_defaults:\n  publisher_grace: 2\npaths:\n  live/a:\n    takeover: true\n  '~^live/':\n    max_readers: 3\n",
    )
    assert config.path_config("live/a").takeover and config.path_config("live/a").max_readers == 0
    assert config.path_config("live/b").max_readers == 3 and config.path_config("live/b").publisher_grace == 2
    assert config.path_config("other").max_readers == 0


def test_docs_match_the_model() -> None:
    assert DOCS.read_text() == reference_markdown() + "\n", (
        "regenerate: streamhive config-reference > docs/configuration.md"
    )
    for name in Config.model_fields:
        assert f"`{name}`" in DOCS.read_text()
