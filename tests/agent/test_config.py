from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.main import EXIT_CONFIG
from tests.support.agent_process import REPO_ROOT

GOOD = 'device_id = "pos-7"\n[mqtt]\nport = 1883\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_good_file_loads_with_fhs_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={})
    assert config.device_id == "pos-7"
    assert config.paths.state_dir == Path("/var/lib/kassa")
    assert config.paths.control_socket == Path("/run/kassa/control.sock")
    assert config.mqtt.port == 1883


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('device_id = "pos-7"\n[mqtt\nport = 1', "TOML syntax error"),
        ('device_id = "pos-7"\ncolour = "red"\n', "key 'colour': unknown key"),
        ('device_id = "pos-7"\n[mqtt]\nprot = 1883\n', "key 'mqtt.prot': unknown key"),
        ('device_id = "pos-7"\n[mqtt]\nport = "many"\n', "key 'mqtt.port': Input should be a valid integer"),
        ('device_id = "pos-7"\n[mqtt]\nport = 70000\n', "key 'mqtt.port': Input should be less than or equal to 65535"),
        ("[mqtt]\nport = 1883\n", "key 'device_id': required value is missing"),
        ('device_id = "pos/7"\n', "key 'device_id': String should match pattern"),
        (
            'device_id = "pos-7"\n[log]\nlevel = "loud"\n',
            "key 'log.level': Input should be 'debug', 'info', 'warning' or 'error'",
        ),
        (
            'device_id = "pos-7"\n[[scanners]]\nname = "hand"\nurl = "serial:///dev/ttyACM0"\nmax_length = 2\n',
            "key 'scanners.0.max_length': Input should be greater than or equal to 16",
        ),
        (
            'device_id = "pos-7"\n[[scanners]]\nname = "hand"\nurl = "serial:///dev/ttyACM0?max_length=99"\n',
            "set max_length as a key of its [[scanners]] table",
        ),
        (
            'device_id = "pos-7"\n[[drawers]]\nname = "cash"\nurl = "serial:///dev/ttyS1"\nsensor_poll_s = 0\n',
            "key 'drawers.0.sensor_poll_s': Input should be greater than 0",
        ),
    ],
)
def test_bad_input_names_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert str(path) in message
    assert expected in message


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nport = "x"\nkeepalive_s = 1\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "3 problems" in str(err.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"configuration file not found.*--config"):
        load_config(tmp_path / "nope.toml", environ={})


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'device_id = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, environ={})


def test_environment_overrides_win(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '[log]\nlevel = "warning"\n')
    config = load_config(
        path, environ={"KASSA_MQTT__PORT": "1999", "KASSA_DEVICE_ID": "pos-8", "KASSA_PATHS__STATE_DIR": str(tmp_path)}
    )
    assert config.mqtt.port == 1999
    assert config.device_id == "pos-8"
    assert config.paths.state_dir == tmp_path
    assert config.log.level == "warning"  # untouched keys keep the file's value


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment variable KASSA_MQTT__PORT: key 'mqtt.port'"):
        load_config(write(tmp_path, GOOD), environ={"KASSA_MQTT__PORT": "abc"})


def test_password_is_never_shown(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD + 'password = "s3cret-pw"\n'), environ={})
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(config)
    assert "s3cret-pw" not in str(config.model_dump(mode="json"))


@pytest.mark.parametrize(
    "text", ['device_id = "pos-7"\nbogus = 1\n', "device_id = \n", 'device_id = "pos-7"\n[mqtt]\nport = "x"\n']
)
def test_agent_refuses_to_start_with_exit_code_78(tmp_path: Path, text: str) -> None:
    state = tmp_path / "state"
    path = write(tmp_path, text + f'\n[paths]\nstate_dir = "{state}"\nrun_dir = "{tmp_path / "run"}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent.main", "--config", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_CONFIG == 78
    assert str(path) in result.stderr
    assert not state.exists(), "nothing may be half-applied: no state dir, no store"
    assert "agent running" not in result.stderr


def test_check_config_flag(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.main", "--config", str(write(tmp_path, GOOD)), "--check-config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "configuration is valid (device pos-7)" in result.stdout
