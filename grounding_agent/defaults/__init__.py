"""One place for the defaults: every default the library, the CLI and the recipes share.

Each is a field of a frozen dataclass instance (or a named constant), so a change is made once; CLI options
read their defaults from these instances, never from literals. One module a capability, all re-exported here:

    from grounding_agent.defaults import SAMPLING, AGENT
    sample_frames(video, fps=SAMPLING.fps, max_frames=SAMPLING.max_frames, max_pixels=SAMPLING.max_pixels)

Modules: `core` (sampling, tokens, servers, agent, HTTP/UI, media, highlights, edit, session, commands,
eval), `limits` (input limits, edit/speech/short-form/OCR/phrase-match knobs), `signals`, `summaries`,
`heads`, `live`, `library`, `reels`.

May import: the standard library only (it is the bottom of the import graph, below `types` and `errors`).
"""

from grounding_agent.defaults.core import *  # noqa: F403
from grounding_agent.defaults.heads import *  # noqa: F403
from grounding_agent.defaults.library import *  # noqa: F403
from grounding_agent.defaults.limits import *  # noqa: F403
from grounding_agent.defaults.live import *  # noqa: F403
from grounding_agent.defaults.reels import *  # noqa: F403
from grounding_agent.defaults.signals import *  # noqa: F403
from grounding_agent.defaults.summaries import *  # noqa: F403
