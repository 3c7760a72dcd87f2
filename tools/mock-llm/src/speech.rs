//! The spoken answers of the OpenAI mock: 0.2 s of a quiet 440 Hz tone,
//! as OpenAI's `pcm16` (24 kHz, 16-bit, mono, little-endian) or wrapped in
//! a WAV file, and the checks OpenAI makes of the `audio` request
//! parameter.

/// The sample rate of OpenAI's `pcm16`.
pub(crate) const RATE: u32 = 24_000;

/// Every format OpenAI accepts in `audio.format`.
pub(crate) const FORMATS: [&str; 5] = ["wav", "mp3", "flac", "opus", "pcm16"];

/// The tone's samples.
pub(crate) fn pcm16() -> Vec<u8> {
    let samples = RATE / 5;
    (0..samples)
        .flat_map(|i| {
            let t = f64::from(i) / f64::from(RATE);
            let sample = (1000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            sample.to_le_bytes()
        })
        .collect()
}

/// `pcm` (16-bit mono at [`RATE`]) as a WAV file.
pub(crate) fn wav(pcm: &[u8]) -> Vec<u8> {
    let len = u32::try_from(pcm.len()).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(pcm.len() + 44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// The audio of a spoken answer in `format`, or why it is refused (the
/// message of a 400): OpenAI streams `pcm16` only, and the mock makes no
/// compressed audio.
pub(crate) fn audio(format: &str, stream: bool) -> Result<Vec<u8>, String> {
    if !FORMATS.contains(&format) {
        return Err(format!(
            "Invalid value: '{format}'. Supported values are: 'wav', 'mp3', 'flac', 'opus', and 'pcm16'."
        ));
    }
    if stream && format != "pcm16" {
        return Err(format!(
            "Unsupported value: 'audio.format' does not support '{format}' when stream=true. Supported values are: 'pcm16'."
        ));
    }
    match format {
        "pcm16" => Ok(pcm16()),
        "wav" => Ok(wav(&pcm16())),
        other => Err(format!("mock-llm makes wav and pcm16 audio only, not {other}")),
    }
}

/// `audio` cut into `n` pieces (whole samples, some empty when there are
/// more pieces than samples).
pub(crate) fn pieces(audio: &[u8], n: usize) -> Vec<&[u8]> {
    let samples = audio.len() / 2;
    let n = n.max(1);
    (0..n)
        .map(|k| {
            let from = k * samples / n * 2;
            let to = if k + 1 == n {
                audio.len()
            } else {
                (k + 1) * samples / n * 2
            };
            &audio[from..to]
        })
        .collect()
}
