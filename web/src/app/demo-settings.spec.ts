import { demoSettings } from './demo-settings';

function storage(entries: Record<string, string>): Pick<Storage, 'getItem'> {
  return { getItem: (key) => entries[key] ?? null };
}

describe('demoSettings', () => {
  it('defaults to this origin, the cookie, refresh ahead and a 30-minute idle timeout', () => {
    expect(demoSettings(storage({}))).toEqual({
      apiUrl: '',
      transport: 'cookie',
      refreshAhead: true,
      idleSeconds: 1800,
    });
  });

  it('follows the overrides a browser sets', () => {
    const settings = demoSettings(
      storage({
        'tollgate.api': 'http://localhost:8000',
        'tollgate.refreshAhead': 'off',
        'tollgate.transport': 'localStorage',
        'tollgate.idleSeconds': '6',
      }),
    );
    expect(settings).toEqual({ apiUrl: 'http://localhost:8000', transport: 'localStorage', refreshAhead: false, idleSeconds: 6 });
  });

  it('ignores what it does not understand', () => {
    expect(demoSettings(storage({ 'tollgate.transport': 'carrier pigeon', 'tollgate.idleSeconds': 'soon' }))).toMatchObject({
      transport: 'cookie',
      idleSeconds: 1800,
    });
  });
});
