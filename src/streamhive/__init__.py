"""streamhive: a live media server and asyncio library."""

__version__ = "0.1.0"

from .config import Config, ConfigError, load_config  # noqa: E402
from .hub import Frame, Track  # noqa: E402
from .server import Server  # noqa: E402

__all__ = ["Config", "ConfigError", "Frame", "Server", "Track", "__version__", "load_config"]
