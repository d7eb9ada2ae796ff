// Preloaded into the Azurite that CovidFunctions starts (node -r parent-watchdog.cjs azurite.js …): ends this
// Azurite when the process that started it is gone (killed before it could stop it), so tests and `covidfn up`
// leave no orphan server behind. Azurite closes its services on the first SIGTERM and exits on the second.
'use strict';
const parent = Number(process.env.COVIDFN_AZURITE_PARENT_PID || 0);
if (parent > 0) {
  const timer = setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch (error) {
      if (error.code === 'EPERM') {
        return; // alive, owned by someone else
      }
      clearInterval(timer);
      process.kill(process.pid, 'SIGTERM');
      setTimeout(() => process.kill(process.pid, 'SIGTERM'), 5000).unref();
    }
  }, 1000);
  timer.unref();
}
