"""Media layer: probe files, decode sampled video frames and audio windows, read sidecar text,
make JPEG posters (video frames, audio waveforms).

Everything here shells out to ffmpeg/ffprobe with a time limit and raises typed
MediaErrors (see mmrec.errors) that name the file and the reason.
"""

from mmrec.media.audio import (
    DEFAULT_SAMPLE_RATE,
    DEFAULT_WINDOW_S,
    AudioWindow,
    DecodedAudio,
    decode_audio,
    iter_audio_windows,
)
from mmrec.media.probe import AudioStream, MediaInfo, SubtitleStream, VideoStream, probe
from mmrec.media.samples import (
    SAMPLES,
    make_sample,
    make_sample_library,
    make_spoken_sample,
    write_sample_interactions,
)
from mmrec.media.sidecar import Cue, TextMeta, parse_subtitles, read_text_meta, readable_title
from mmrec.media.speech_samples import SpeechToolError, SpokenClip, make_spoken_clip, speak
from mmrec.media.thumbs import (
    DEFAULT_THUMB_WIDTH,
    MAX_INPUTS_PER_RUN,
    frame_thumbnails,
    wave_height,
    waveform_thumbnails,
)
from mmrec.media.video import (
    DecodedVideo,
    FrameChunk,
    FramePolicy,
    Window,
    decode_video,
    group_windows,
    iter_frames,
)

MEDIA_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .wmv .flv .3gp .ogv "
    ".wav .mp3 .flac .ogg .oga .opus .m4a .aac .wma .aif .aiff .mka".split()
)

__all__ = [
    "DEFAULT_SAMPLE_RATE", "DEFAULT_THUMB_WIDTH", "DEFAULT_WINDOW_S", "MAX_INPUTS_PER_RUN",
    "MEDIA_SUFFIXES", "SAMPLES",
    "AudioStream", "AudioWindow", "Cue", "DecodedAudio", "DecodedVideo", "FrameChunk",
    "FramePolicy", "MediaInfo", "SubtitleStream", "TextMeta", "VideoStream", "Window",
    "decode_audio", "decode_video", "frame_thumbnails", "group_windows", "iter_audio_windows",
    "iter_frames", "make_sample",
    "make_sample_library",
    "parse_subtitles", "probe", "read_text_meta", "readable_title", "wave_height",
    "waveform_thumbnails", "write_sample_interactions", "SpeechToolError", "SpokenClip",
    "make_spoken_clip", "make_spoken_sample", "speak",
]
