// Entry of the download worker thread. The sources are TypeScript run without a build: a worker thread does not
// inherit the main thread's TypeScript loader (Node 20), so when the first import fails for the extension, tsx is
// registered in this thread and the worker imported again (under another URL: the failed import stays cached).
try {
  await import('./worker.ts');
} catch (error) {
  if (error?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
  const { register } = await import('tsx/esm/api');
  register();
  await import('./worker.ts?tsx');
}
