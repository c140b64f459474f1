// Process-wide VAD work, for /metrics (eva_vad_windows_total, eva_vad_batches_total), in a module of its own so
// that the metrics (and the cluster supervisor, which loads them) do not load the model's runtime.

/** Windows through the model, settled near-silence answered without it, and model runs; every VadEngine adds. */
export const vadTotals = { modelWindows: 0, skippedWindows: 0, batches: 0 };
