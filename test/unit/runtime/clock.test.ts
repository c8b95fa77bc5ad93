import { describe, it, expect } from '@jest/globals';
import { systemClock, timerHandleBrand, type TimerHandle } from '../../../src/runtime/clock.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('FakeClock', () => {
  it('starts at the given time and only moves on advance', () => {
    const clock = new FakeClock(new Date('2025-03-01T00:00:00Z'));
    expect(clock.now().toISOString()).toBe('2025-03-01T00:00:00.000Z');
    clock.advance(1500);
    expect(clock.now().toISOString()).toBe('2025-03-01T00:00:01.500Z');
  });

  it('fires due timers in due-time order, ties in scheduling order, with now() at the due time', () => {
    const clock = new FakeClock(new Date(0));
    const fired: string[] = [];
    const at = (name: string) => () => fired.push(`${name}@${clock.now().getTime()}`);
    clock.setTimeout(at('c'), 300);
    clock.setTimeout(at('a'), 100);
    clock.setTimeout(at('b1'), 200);
    clock.setTimeout(at('b2'), 200);
    clock.setTimeout(at('late'), 1000);
    clock.advance(300);
    expect(fired).toEqual(['a@100', 'b1@200', 'b2@200', 'c@300']);
    expect(clock.pendingTimers()).toBe(1);
  });

  it('fires timers scheduled by timers within the same advance', () => {
    const clock = new FakeClock(new Date(0));
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now().getTime());
      clock.setTimeout(() => fired.push(clock.now().getTime()), 50);
    }, 100);
    clock.advance(200);
    expect(fired).toEqual([100, 150]);
    expect(clock.now().getTime()).toBe(200);
  });

  it('does not fire cleared timers; clearing twice or a foreign handle is a no-op', () => {
    const clock = new FakeClock(new Date(0));
    let fired = 0;
    const handle = clock.setTimeout(() => fired++, 10);
    clock.clearTimeout(handle);
    clock.clearTimeout(handle);
    const foreign: TimerHandle = { [timerHandleBrand]: true };
    clock.clearTimeout(foreign);
    clock.advance(100);
    expect(fired).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('treats negative delays as 0 and rejects negative advances', () => {
    const clock = new FakeClock(new Date(0));
    let fired = 0;
    clock.setTimeout(() => fired++, -5);
    clock.advance(0);
    expect(fired).toBe(1);
    expect(() => {
      clock.advance(-1);
    }).toThrow(RangeError);
  });
});

describe('systemClock', () => {
  it('runs a timer and does not run a cleared one', async () => {
    const order: string[] = [];
    const cleared = systemClock.setTimeout(() => order.push('cleared'), 0);
    systemClock.clearTimeout(cleared);
    await new Promise<void>((resolve) => {
      systemClock.setTimeout(() => {
        order.push('ran');
        resolve();
      }, 0);
    });
    expect(order).toEqual(['ran']);
  });

  it('ignores handles it did not issue', () => {
    expect(() => {
      systemClock.clearTimeout(new FakeClock().setTimeout(() => undefined, 1));
    }).not.toThrow();
  });
});
