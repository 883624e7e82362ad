import { afterEach, describe, expect, it } from 'vitest';
import { armFault, armFaultsFromEnv, disarmFaults, faultHits, faultPoint, InjectedFault } from '../../../src/observability/index.js';

describe('fault points', () => {
  afterEach(() => disarmFaults());

  it('do nothing unless armed', async () => {
    await expect(faultPoint('relay.after-publish')).resolves.toBeUndefined();
  });

  it('fire on the chosen hit, the chosen number of times', async () => {
    armFault('p', 'throw', { onHit: 2, times: 2 });
    await faultPoint('p');
    await expect(faultPoint('p')).rejects.toThrow(new InjectedFault('p'));
    await expect(faultPoint('p')).rejects.toThrow('injected fault at p');
    await faultPoint('p');
    expect(faultHits()).toEqual({ p: 4 });
  });

  it('run a custom action (a pause, a probe)', async () => {
    const seen: string[] = [];
    armFault('q', async (point) => {
      seen.push(point);
    });
    await faultPoint('q');
    expect(seen).toEqual(['q']);
  });

  it('parse CONCORDAT_FAULTS and reject a malformed entry with the expected form', () => {
    armFaultsFromEnv('a.b=throw@3, c-d=kill');
    expect(faultHits()).toEqual({ 'a.b': 0, 'c-d': 0 });
    expect(() => armFaultsFromEnv('a.b=explode')).toThrow(
      "CONCORDAT_FAULTS: 'a.b=explode' is not <point>=kill|throw[@<hit>] (for example relay.after-publish=kill@2)",
    );
  });
});
