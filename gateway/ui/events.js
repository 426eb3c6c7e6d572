// The gateway's stream of batch changes (GET /api/v1/batches/events): a snapshot, then each change as it
// happens. The browser's EventSource reconnects by itself, and the gateway starts again with a snapshot.
export function watchBatches({ ids, snapshot = true, onSnapshot, onBatch }) {
  const params = new URLSearchParams();
  if (ids && ids.length) params.set('batchId', ids.join(','));
  if (!snapshot) params.set('snapshot', 'false');
  const query = params.toString();
  const source = new EventSource(`/api/v1/batches/events${query ? `?${query}` : ''}`);
  if (onSnapshot) source.addEventListener('snapshot', (event) => onSnapshot(JSON.parse(event.data).batches));
  if (onBatch) source.addEventListener('batch', (event) => onBatch(JSON.parse(event.data)));
  return () => source.close();
}
